package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WaitMetric waits, at most Wait, until Metric(name, labels...) is want:
// for what the node counts a moment after a client or receiver saw it
// (a webhook's answer, say).
func (n *Node) WaitMetric(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	require.Eventually(t, func() bool { return n.Metric(t, name, labels...) == want }, Wait, time.Millisecond,
		"%s%v reaches %v", name, labels, want)
}

// Metric sums the series of the node's metric name (counters and gauges)
// whose labels include labels, given as name, value pairs; a metric with
// no such series sums to 0. It fails the test when the node's registry
// cannot be gathered.
func (n *Node) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := n.Stats.Gatherer().Gather()
	require.NoError(t, err, "gather the metrics of %s", n.Addr)
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}
