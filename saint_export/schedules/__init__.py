"""Choosing a schedule for deployment: calibrate a dynamic schedule into static fixed_r counts."""
