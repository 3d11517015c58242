#!/usr/bin/env python
"""The revy demo project: `python example/manage.py demo` migrates, seeds and serves it."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run from anywhere: the repository root must be importable (revy, revy_api, example).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
