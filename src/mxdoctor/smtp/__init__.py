"""SMTP reachability: the staged probe of each MX address (``probe``); its findings live in
``checks/smtp.py``, its rendering in ``report/smtp.py`` and the command in ``cli/smtp.py``."""
