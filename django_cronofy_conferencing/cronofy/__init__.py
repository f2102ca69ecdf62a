"""Speaking to Cronofy: the client, data centers and applications, rate limits, payloads."""
