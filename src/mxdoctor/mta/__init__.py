"""MTA behaviour models as data (one entry per MTA) and the verdict logic that reads them."""
