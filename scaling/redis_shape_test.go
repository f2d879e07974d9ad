package scaling_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// TestRedisShapes: the settings choose the shape of Redis; NewRedis makes
// no connection, so unreachable addresses are fine here.
func TestRedisShapes(t *testing.T) {
	base := scaling.Config{Enabled: true, Channel: "fizz", RedisURL: "redis://:pw@127.0.0.1:1/2"}
	tests := []struct {
		name    string
		mutate  func(*scaling.Config)
		prefix  string
		sharded bool
		err     string
	}{
		{name: "one server", mutate: func(*scaling.Config) {}, prefix: "fizz"},
		{name: "sentinel", mutate: func(c *scaling.Config) { c.RedisSentinels, c.RedisMaster = []string{"127.0.0.1:2"}, "m" }, prefix: "fizz"},
		{name: "cluster", mutate: func(c *scaling.Config) { c.RedisCluster = []string{"127.0.0.1:3", "127.0.0.1:4"} }, prefix: "{fizz}", sharded: true},
		{name: "sentinel without a master", mutate: func(c *scaling.Config) { c.RedisSentinels = []string{"127.0.0.1:2"} }, err: "master"},
		{name: "both", mutate: func(c *scaling.Config) {
			c.RedisSentinels, c.RedisMaster, c.RedisCluster = []string{"127.0.0.1:2"}, "m", []string{"127.0.0.1:3"}
		}, err: "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mutate(&cfg)
			r, err := scaling.NewRedis(cfg, harness.Logger(t), nil)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			assert.Equal(t, tt.prefix, r.Prefix())
			assert.Equal(t, tt.sharded, r.Sharded())
			assert.Equal(t, -1, r.Shard("app", "presence-room"), "presence channels stay on the shared channel")
			if tt.sharded {
				k := r.Shard("app", "news")
				assert.Equal(t, scaling.ShardOf("app", "news", scaling.ClusterShards), k)
			} else {
				assert.Equal(t, -1, r.Shard("app", "news"), "one stream")
			}
		})
	}
}
