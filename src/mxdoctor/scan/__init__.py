"""Bulk scan: MTA-correct next-hop resolution of long lists of mail domains, streamed record by record."""
