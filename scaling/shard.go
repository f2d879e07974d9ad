package scaling

import (
	"hash/fnv"
	"strconv"
)

// ClusterShards is how many shard channels carry the events on a Redis
// Cluster. Their slots are spread evenly over the 16384 (ShardChannels),
// so masters that hold equal ranges of slots (as redis-cli --cluster
// create makes them) carry equal numbers of them: 12 divides evenly over
// 2, 3, 4 or 6 masters.
const ClusterShards = 12

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Sharder is implemented by a PubSubProvider whose envelopes travel over
// several ordered streams (a Redis Cluster's shard channels): envelopes of
// one Pusher channel keep their order because they always take the same
// stream, the one Shard names (any int: an index, or -1 for the shared
// stream). A publisher of an event on several channels
// sends one envelope per stream, with Envelope.Route set to one of the
// channels it carries.
type Sharder interface {
	Shard(appID, channel string) int
}

// ShardOf maps an app's channel to one of n shards by a stable hash.
func ShardOf(appID, channel string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(appID))
	_, _ = h.Write([]byte{'\n'})
	_, _ = h.Write([]byte(channel))
	return int(h.Sum32() % uint32(n))
}

// GroupByShard splits channels into the groups that share a shard of p,
// in the order of their first channel; a provider that is not a Sharder
// has one group.
func GroupByShard(p PubSubProvider, appID string, channels []string) [][]string {
	sh, ok := p.(Sharder)
	if !ok || len(channels) < 2 {
		return [][]string{channels}
	}
	at := make(map[int]int)
	var groups [][]string
	for _, c := range channels {
		k := sh.Shard(appID, c)
		i, ok := at[k]
		if !ok {
			i = len(groups)
			at[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	return groups
}

// ShardChannels names the n event shard channels of the cluster channel
// prefix: "{prefix:ev<k>:<i>}", each a hash tag of its own, with the
// smallest i whose slot falls in the k-th of n equal ranges of slots.
func ShardChannels(prefix string, n int) []string {
	out := make([]string, n)
	for k := range n {
		lo, hi := k*clusterSlots/n, (k+1)*clusterSlots/n
		for i := 0; ; i++ {
			tag := prefix + ":ev" + strconv.Itoa(k) + ":" + strconv.Itoa(i)
			if s := int(KeySlot(tag)); s >= lo && s < hi {
				out[k] = "{" + tag + "}"
				break
			}
		}
	}
	return out
}

// KeySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag (the text between the first "{" and the next "}", when not
// empty), else of the whole key, modulo 16384.
func KeySlot(key string) uint16 {
	for i := 0; i < len(key); i++ {
		if key[i] != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j > i+1 {
					key = key[i+1 : j]
				}
				return crc16(key) % clusterSlots
			}
		}
		break
	}
	return crc16(key) % clusterSlots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), Redis Cluster's.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
