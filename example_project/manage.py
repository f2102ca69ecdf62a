#!/usr/bin/env python
"""The example host project's manage.py.

python example_project/manage.py demo        # the whole app on a simulated Cronofy
python example_project/manage.py runserver   # the site alone (see the README)
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Runnable from anywhere: the project package sits next to this file.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
