"""The `overnight` command: parses arguments and calls the module that does the work.

Heavy imports (pydantic, docker, git) happen inside the commands, so `overnight --help` is instant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any


def default_tag() -> str:
    return datetime.date.today().strftime("%b%d").lower()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overnight",
        description="Run an autoresearch loop unattended: the agent edits train.py, each "
        "experiment runs in a fresh container, a protected evaluator scores it, git keeps the best.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or continue) a night on a task folder")
    run.add_argument("task", type=Path, help="folder with program.md, train.py, prepare.py")
    run.add_argument(
        "--tag", default=None, help="name of the run (default: today's date, e.g. nov26)"
    )
    _agent_arguments(run)
    run.add_argument("--script", type=Path, help="JSONL proposals for --provider replay")
    run.add_argument("--seed", type=int, help="seed of the mutate or optuna agent")
    run.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="stop before a model call that could take this tag's spend past USD dollars",
    )
    run.add_argument(
        "--max-experiments", type=int, help="stop after N proposals in this tag (baseline excluded)"
    )
    run.add_argument(
        "--max-hours", type=float, help="stop before an experiment that would end after H hours"
    )
    run.add_argument(
        "--until", metavar="HH:MM", help="stop before an experiment that would end after this time"
    )
    run.add_argument(
        "--max-consecutive-crashes",
        type=int,
        metavar="K",
        help="stop after K crashes or timeouts in a row (default 10; 0: never)",
    )
    run.add_argument("--metric", help="metric name (overrides overnight.toml and prepare.py)")
    run.add_argument("--direction", choices=["minimize", "maximize"])
    run.add_argument(
        "--noise-runs",
        type=int,
        metavar="K",
        help="run the baseline K times to measure the metric's noise (default 1; with K > 1 a "
        "keep must beat the best by more than 2 sigma unless min_improvement says otherwise)",
    )
    run.add_argument("--time-budget", type=float, help="seconds the training may use")
    run.add_argument("--timeout", type=float, help="hard limit per training run, in seconds")
    run.add_argument("--image", help="Docker image to run in (must already be on this machine)")
    run.add_argument(
        "--sandbox",
        choices=["docker", "local"],
        help="docker (default), or local for machines without Docker: weaker isolation",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N experiments at the same time (default: the GPU pool's slots, else 1)",
    )
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="local (default): this machine's Docker engine; ray: a Ray cluster's nodes",
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help='the Ray cluster for --executor ray: "auto" (default), host:port or ray://host:port',
    )
    run.add_argument(
        "--report-every",
        type=int,
        metavar="N",
        default=0,
        help="rewrite the report after every N experiments (it is always written at the end)",
    )

    status = commands.add_parser("status", help="what a run has done so far")
    status.add_argument("task", type=Path)
    status.add_argument("--tag", default=None, help="default: the most recent run")
    status.add_argument("--json", action="store_true", help="print JSON")

    report = commands.add_parser(
        "report", help="write report.html, report.md and progress.png into a run's folder"
    )
    report.add_argument("task", type=Path)
    report.add_argument("--tag", default=None, help="default: the most recent run")

    validate = commands.add_parser(
        "validate", help="check a task folder and say what a run would do"
    )
    validate.add_argument("task", type=Path)
    validate.add_argument("--sandbox", choices=["docker", "local"], help="check this backend")
    validate.add_argument(
        "--workers", type=int, metavar="N", help="check N experiments at once (limits shared)"
    )
    validate.add_argument("--executor", choices=["local", "ray"], help="check this executor")

    init = commands.add_parser(
        "init", help="write the metric, mode and timeout overnight finds into overnight.toml"
    )
    init.add_argument("task", type=Path)
    init.add_argument("--metric", help="metric name, when it cannot be inferred")
    init.add_argument("--direction", choices=["minimize", "maximize"])

    doctor = commands.add_parser(
        "doctor", help="check the key, the model, the Docker engine and the image"
    )
    doctor.add_argument("task", type=Path, nargs="?", help="task folder whose settings to check")
    _agent_arguments(doctor)

    image = commands.add_parser("image", help="build the default image or a task's image")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = image_commands.add_parser(
        "build", help="build overnight's default image offline (debootstrap), or a task's image"
    )
    build.add_argument(
        "task", type=Path, nargs="?", help="a task folder: build the image it runs in, ahead"
    )
    build.add_argument("--force", action="store_true", help="rebuild even if it exists")
    return parser


def _agent_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.providers.registry import model_provider_list, provider_names

    parser.add_argument(
        "--provider",
        choices=provider_names(),
        help="agent (default: mutate, or [agent] in overnight.toml)",
    )
    parser.add_argument("--model", help=f"model name for {model_provider_list()}")


def say(line: object, file: Any = None) -> None:
    """Print a line for a terminal: any control character in it (from a file name, a task's
    settings, a model's answer) is shown as an escape, never sent raw."""
    from harness.untrusted import printable

    print(printable(str(line)), file=file or sys.stdout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.errors import OvernightError

    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`overnight validate . | head`): nothing more to say to it.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OvernightError as err:
        say(f"overnight: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "overnight: aborted; the branch is at the best commit and no container is left. "
            "Run the same tag again to continue.",
            file=sys.stderr,
        )
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from harness.overrides import Overrides

    if args.command == "run":
        return _run(args)
    if args.command == "status":
        from harness.status import format_status, status_report

        report = status_report(args.task.resolve(), args.tag)
        say(json.dumps(report, indent=2) if args.json else format_status(report))
        return 0
    if args.command == "report":
        return _report(args)
    if args.command == "validate":
        from harness.validate import validate

        overrides = Overrides(sandbox=args.sandbox, workers=args.workers, executor=args.executor)
        return validate(args.task.resolve(), out=say, overrides=overrides)
    if args.command == "init":
        from harness.init_task import init_task

        return init_task(
            args.task.resolve(), Overrides(metric=args.metric, direction=args.direction)
        )
    if args.command == "doctor":
        from harness.doctor import doctor

        task = args.task.resolve() if args.task else None
        return doctor(task, Overrides(provider=args.provider, model=args.model), out=say)
    if args.task is not None:
        from harness.task_images import build_for_task

        build_for_task(args.task.resolve(), force=args.force)
        return 0
    from harness.backends import docker_client
    from sandbox.image import build_default_image

    build_default_image(docker_client(), force=args.force)
    return 0


def _run(args: argparse.Namespace) -> int:
    from harness.errors import TaskError
    from harness.live import View
    from harness.night import RunOptions, run_night
    from harness.overrides import Overrides

    if args.noise_runs is not None and args.noise_runs < 1:
        raise TaskError("--noise-runs must be 1 or more")
    if args.workers is not None and args.workers < 1:
        raise TaskError("--workers must be 1 or more")
    overrides = Overrides(
        metric=args.metric,
        direction=args.direction,
        time_budget=args.time_budget,
        timeout=args.timeout,
        image=args.image,
        sandbox=args.sandbox,
        provider=args.provider,
        script=args.script.resolve() if args.script else None,
        seed=args.seed,
        model=args.model,
        max_cost=args.max_cost,
        noise_runs=args.noise_runs,
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    for name in ("max_experiments", "max_hours", "max_consecutive_crashes", "report_every"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise TaskError(f"--{name.replace('_', '-')} must be 0 or more")
    view = View()
    try:
        summary = run_night(
            RunOptions(
                task_dir=args.task,
                tag=args.tag or default_tag(),
                overrides=overrides,
                max_experiments=args.max_experiments,
                max_hours=args.max_hours,
                until=args.until,
                max_consecutive_crashes=args.max_consecutive_crashes,
                report_every=args.report_every,
            ),
            view,
        )
    finally:
        view.close()
    best, baseline = summary.best, summary.baseline
    say(f"stopped: {summary.stop_reason}")
    if best and baseline:
        say(
            f"best {best.metric:.6g} at experiment {best.experiment} (baseline {baseline.metric:.6g}), "
            f"branch overnight/{summary.tag}"
        )
    say(f"results: {summary.run_dir / 'results.tsv'}")
    if (summary.run_dir / "report.html").is_file():
        say(f"report: {summary.run_dir / 'report.html'}")
    return 3 if summary.failed else 0


def _report(args: argparse.Namespace) -> int:
    from harness.report import report_folder, write_report

    written = write_report(report_folder(args.task.resolve(), args.tag))
    if written.note:
        print(f"overnight: {written.note}", file=sys.stderr)
    for path in (written.html, written.markdown, written.plot):
        if path is not None:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
