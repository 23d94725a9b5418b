"""The agent's D-Bus names, shared by the service and ``edgecoderctl`` (no dependencies)."""

__all__ = ("BUS_NAME", "ERROR_PREFIX", "INTERFACE", "JOB_INTERFACE", "OBJECT_PATH")

BUS_NAME = "org.edgecoder.Agent"
OBJECT_PATH = "/org/edgecoder/Agent"
INTERFACE = "org.edgecoder.Agent1"
JOB_INTERFACE = "org.edgecoder.Agent1.Job"
ERROR_PREFIX = "org.edgecoder.Agent1.Error."
