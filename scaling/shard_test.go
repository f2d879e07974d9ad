package scaling_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
)

func TestKeySlot(t *testing.T) {
	// Values as CLUSTER KEYSLOT gives them (and the Redis Cluster spec's
	// CRC16 check value for "123456789").
	tests := []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3},
		{"foo", 12182},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"user1000", 3443},
		{"foo{}{bar}", 8363},    // an empty tag: the whole key
		{"foo{{bar}}zap", 4015}, // the tag is "{bar"
		{"foo{bar}{zap}", 5061}, // the first tag: "bar"
		{"bar", 5061},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			assert.Equal(t, tt.want, scaling.KeySlot(tt.key))
		})
	}
	assert.NotEqual(t, scaling.KeySlot("open"), scaling.KeySlot("{open"), "no closing brace: the whole key")
}

func TestShardChannels(t *testing.T) {
	for _, n := range []int{1, 3, 12, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			chans := scaling.ShardChannels("fizz", n)
			require.Len(t, chans, n)
			seen := map[string]bool{}
			for k, ch := range chans {
				slot := int(scaling.KeySlot(ch))
				assert.GreaterOrEqual(t, slot, k*16384/n, "shard %d (%s) in its range of slots", k, ch)
				assert.Less(t, slot, (k+1)*16384/n, "shard %d (%s) in its range of slots", k, ch)
				assert.False(t, seen[ch], "shard channel %s twice", ch)
				seen[ch] = true
			}
			assert.Equal(t, chans, scaling.ShardChannels("fizz", n), "stable")
		})
	}
}

func TestShardOf(t *testing.T) {
	counts := make([]int, scaling.ClusterShards)
	for i := range 1200 {
		k := scaling.ShardOf("app", fmt.Sprintf("private-chat-%d", i), scaling.ClusterShards)
		require.Equal(t, k, scaling.ShardOf("app", fmt.Sprintf("private-chat-%d", i), scaling.ClusterShards), "stable")
		counts[k]++
	}
	for k, c := range counts {
		assert.Greater(t, c, 50, "shard %d gets its part of 1200 channels: %v", k, counts)
	}
	assert.NotEqual(t, scaling.ShardOf("a", "bc", 1<<30), scaling.ShardOf("ab", "c", 1<<30), "the app and the channel are kept apart")
}

// sharder is a provider that shards by the channel's first letter.
type sharder struct{ scaling.PubSubProvider }

func (sharder) Shard(_, channel string) int { return int(channel[0]) }

func TestGroupByShard(t *testing.T) {
	tests := []struct {
		name     string
		p        scaling.PubSubProvider
		channels []string
		want     [][]string
	}{
		{"not sharded", scaling.NewLocal(nil), []string{"a1", "b1", "a2"}, [][]string{{"a1", "b1", "a2"}}},
		{"one channel", sharder{}, []string{"a1"}, [][]string{{"a1"}}},
		{"grouped in order of first channel", sharder{}, []string{"b1", "a1", "b2", "c1", "a2"}, [][]string{{"b1", "b2"}, {"a1", "a2"}, {"c1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, scaling.GroupByShard(tt.p, "app", tt.channels))
		})
	}
}
