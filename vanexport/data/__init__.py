"""Images in, arrays out: the variant's evaluation preprocessing without PyTorch."""
