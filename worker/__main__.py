"""`python -m worker` starts one worker."""

from worker.service import main

main()
