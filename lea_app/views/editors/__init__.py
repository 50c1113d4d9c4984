"""The peer and cluster editors (``peer``, ``cluster``), built on ``base`` from ``widgets`` and
``rows``; ``problems`` maps what is wrong with a form to its inputs and is Qt-free.

Kept empty: importing ``problems`` must not load Qt.
"""
