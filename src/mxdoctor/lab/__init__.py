"""The lab: a simulated DNS-and-SMTP internet on loopback, with faults injected as scenario data.

``with mxdoctor.lab.running("aaaa-servfail") as card:`` starts a scenario's servers and yields its card.
"""
