"""journeyhub connector for Studio Ninja.

Studio Ninja has no API: the connector reads the Google calendar its jobs are synced into
(through journeyhub_gcal) and sends new leads through the studio's enquiry form.
"""
