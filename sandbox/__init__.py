"""Where untrusted code runs.

docker_sandbox.py   one fresh, locked-down container per step, with a deadline and a classified result
enforcer.py         PID 1 of every container: the deadline nothing inside can stop (run by its python3)
deadline.py         the enforcer's command line, the fallback without python3, its status line
attached.py         a container's exit code and output, taken although the engine removes it at exit
hardening.py        every container's options in one place, the engine checks, the hardening report
volumes.py          the size-capped output directory: a tmpfs volume per experiment and its keeper
users.py            the uids of training, evaluation and call_train's workers
local_sandbox.py    --sandbox local: the same contract as host processes, with weaker isolation
local_limits.py     sets rlimits, then becomes the command (local runs)
process_tree.py     finds and kills every process a local run started
image.py            the default image built offline (debootstrap, with pip), image checks
task_image.py       a task's image from its declared dependencies: build container, commit, old ones removed
dockerfile_image.py a task's own Dockerfile, built once, logged to a file
host_pip.py         this machine's index, CA bundle and proxy settings, for the build container only
build_log.py        build logs as plain files (no escape codes, no progress bars)
module_probe.py     which modules an image lacks, asked in one locked-down container
evaluate_runner.py  runs prepare.evaluate() inside the evaluator container (mounted read-only)
evaluator_checks.py what the runner checks: the output folder, narrowed values, real metrics
overnight_eval.py   call_train, for evaluators that must call train.py (imported by prepare.py)
train_worker.py     one call into train.py, in a process of its own (started by call_train)
"""
