"""The ``twistd telephony`` subcommand.

This module only names the tap module: ``twistd`` imports every plugin just to
list its subcommands, so nothing here may read configuration or import the
server.  There is deliberately no ``__init__.py`` in ``twisted/`` or
``twisted/plugins/``: ours would shadow Twisted's own package.
"""

from twisted.application.service import ServiceMaker

telephony = ServiceMaker(
    "telephony",
    "telephony.tap",
    "A programmable SIP server with a Plivo-compatible REST API.",
    "telephony",
)
