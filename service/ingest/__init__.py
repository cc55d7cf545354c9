"""The HTTP ingest half: signed Shopee pushes in, durable keyed Kafka records out."""
