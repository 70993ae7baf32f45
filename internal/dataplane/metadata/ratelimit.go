package metadata

import (
	"net/netip"
	"sync"
	"time"
)

// RateLimit is a per-caller token bucket: a caller may make Burst requests
// at once and Rate per second after that; beyond it the service answers
// 429, as Neutron's haproxy-based metadata proxy does with its rate limit.
type RateLimit struct {
	Rate  float64 // requests per second; negative: no limit
	Burst int     // bucket size; 0: 2 x Rate
}

// DefaultRateLimit allows a booting guest's whole crawl (cloud-init reads a
// few dozen paths) at once and a steady 100 requests per second.
var DefaultRateLimit = RateLimit{Rate: 100, Burst: 200}

// Limits on the limiter's own memory: past maxBuckets callers it forgets
// the buckets that have refilled; if that is not enough, new callers share
// one bucket, so a flood of spoofed sources cannot grow memory without
// bound (with anti-spoofing, sources are real ports and far fewer).
const (
	maxBuckets    = 1 << 16
	sweepInterval = 30 * time.Second // and, when full, 1 s
)

// callerKey names a caller: the same address on two networks is two VMs.
type callerKey struct {
	key string
	src netip.Addr
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiter holds the buckets of all callers of a Server.
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu        sync.Mutex
	buckets   map[callerKey]*bucket
	overflow  bucket
	lastSweep time.Time
}

func newLimiter(rl RateLimit, now func() time.Time) *limiter {
	burst := float64(rl.Burst)
	if burst <= 0 {
		burst = 2 * rl.Rate
	}
	if burst < 1 {
		burst = 1
	}
	return &limiter{rate: rl.Rate, burst: burst, now: now, buckets: map[callerKey]*bucket{}}
}

// allow takes a token from the caller's bucket, or reports that it is empty.
func (l *limiter) allow(key string, src netip.Addr) bool {
	if l.rate < 0 {
		return true
	}
	now := l.now()
	k := callerKey{key, src}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	if !ok {
		// Sweep now and then; when full, at most once a second, so a flood
		// of new sources does not turn every request into a sweep.
		if since := now.Sub(l.lastSweep); since > sweepInterval || (len(l.buckets) >= maxBuckets && since > time.Second) {
			l.sweep(now)
		}
		if len(l.buckets) >= maxBuckets {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[k] = b
		}
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
		b.last = now
	}
}

// sweep forgets the buckets that are full again: a new one would be the same.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
