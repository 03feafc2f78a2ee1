"""The delivery core: the task gate and the outcome recorder the push worker runs on."""
