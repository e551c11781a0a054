"""What a network costs on hardware: MACs (flops), measured TFLite latency, latency models."""
