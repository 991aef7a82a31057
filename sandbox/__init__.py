"""Where untrusted code runs.

docker_sandbox.py   one fresh, locked-down container per step, with a deadline and a classified result
image.py            the default image built offline (debootstrap), task Dockerfiles, image checks
evaluate_runner.py  runs prepare.evaluate() inside the evaluator container (mounted read-only)
"""
