"""overnight's loop: from a task folder to a ledger. Start with seams.py.

seams.py       the records and Protocols that cross module boundaries
errors.py      errors that stop a run with a one-line message
task.py        the task folder contract, read without running anything
config.py      overnight.toml, prepare.py constants and CLI flags, resolved into Settings
model_config.py  the [agent] settings of the model providers
imports.py     the modules prepare.py and train.py import, read from the syntax tree
dependencies.py  what a task declares it needs (pyproject.toml, requirements.txt, [image])
task_images.py the image a task runs in, built if need be, and its imports checked in it
untrusted.py   what the agent writes, made valid, printable and bounded where it comes in
edit_tool.py   the agent's one tool, `edit`, bound to train.py
edit_hint.py   the nearest lines of train.py for an old_str that matches nothing, bounded
compile_check.py  whether a train.py compiles, asked of a child Python with a deadline
agents/        the agents that propose experiments (mutate, optuna, replay, a model)
providers/     the model seam: Anthropic, OpenAI and litellm adapters, retries, costs
backends.py    the night's sandbox from the settings: Docker, or --sandbox local
experiment.py  setup, training and evaluation of one train.py, in containers
decision.py    keep or not, and confirmation runs: pure functions
gitops.py      the worktree and branch overnight/<tag>, commits and guarded resets
ledger.py      results.tsv, events.jsonl and per-experiment files
night.py       the loop that wires all of the above
live.py        the terminal view
status.py      `overnight status`
report.py      `overnight report`: report.html, report.md and progress.png in the run folder
report_data.py what the report shows, read from the run folder (untrusted text cleaned there)
report_summary.py  the headline and the settings, in words both formats share
report_plot.py progress.png (matplotlib, imported lazily, headless)
report_html.py report.html: one self-contained page
report_md.py   report.md: for a pull request or a chat
validate.py    `overnight validate`
doctor.py      `overnight doctor`
cli.py         argument parsing
"""
