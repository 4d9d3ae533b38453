"""Small models trained here, from data that a registry package ships, so precision checks use real weights."""
