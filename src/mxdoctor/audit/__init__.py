"""``mxdoctor audit``: every authoritative server of a mail domain's zone and of its MX hosts' zones,
probed one by one (types, EDNS, TCP, flags, consistency), as evidence the checks judge.
"""
