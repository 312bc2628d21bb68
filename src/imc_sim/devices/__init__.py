"""Device physics: profiles, device families (programming, drift, read noise), moment tables."""
