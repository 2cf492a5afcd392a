package cluster

// Up reports whether Redis is taken as reachable: the tests' view of the
// health check, which the product reads through the snowgate_redis_up metric.
func (c *Client) Up() bool { return !c.h.down.Load() }
