# forkserver.py - placeholder: the warm interpreter of plain execs (issue 12, item 2).
