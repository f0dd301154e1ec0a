"""``python -m hrvs_ray``: the same CLI as the ``hrvs-ray`` console script, for environments
where only the interpreter is on PATH (a job entrypoint, a bare venv, a container exec)."""
import sys

from hrvs_ray.cli import main

if __name__ == "__main__":
    sys.exit(main())
