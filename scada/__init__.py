"""SCADA gateway: an OPC-UA server that shows the monitor and interlock and forwards operator commands.

Never part of the interlock process and holds no interlock logic: it only shows and forwards.
"""
