package connection

import "time"

// bucket is a token bucket: rate tokens a second, holding rate at most.
// A rate of 0 or less allows everything. Not safe for concurrent use.
type bucket struct {
	rate   float64
	tokens float64
	at     time.Time
}

// window counts attempts in fixed windows that start at the first
// attempt after the last window ended, as Laravel's rate limiter does.
// Not safe for concurrent use.
type window struct {
	ends int64 // unix nanoseconds
	n    int
}

// hit counts an attempt at now and reports whether it is within max for
// a window of length decay.
func (w *window) hit(now time.Time, max int, decay time.Duration) bool {
	if t := now.UnixNano(); t >= w.ends {
		w.ends, w.n = t+int64(decay), 0
	}
	w.n++
	return w.n <= max
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
