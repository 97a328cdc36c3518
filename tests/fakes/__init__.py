"""Hardware stand-ins for tests: an NVML module (pynvml_fake) and a RAPL sysfs tree (rapl_tree)."""
