"""The face-search tier: shards that each hold some face partitions and answer range queries."""
