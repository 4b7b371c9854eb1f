"""`python -m worker` starts one worker; `python -m worker batch IN OUT ...` converts a folder instead."""

import sys

if sys.argv[1:2] == ["batch"]:
    from worker.batch import command

    command(sys.argv[2:], prog_name="batch")
else:
    from worker.service import main

    main()
