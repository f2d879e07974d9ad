package connection

import "time"

// bucket is a token bucket: rate tokens a second, holding rate at most.
// A rate of 0 or less allows everything. Not safe for concurrent use.
type bucket struct {
	rate   float64
	tokens float64
	at     time.Time
}

// newBucket returns a full bucket.
func newBucket(rate int, now time.Time) bucket {
	return bucket{rate: float64(rate), tokens: float64(rate), at: now}
}

// take takes one token at now and reports whether there was one.
func (b *bucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*b.rate, b.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
