package stats

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

// linkTimeout bounds the link check of one scrape.
const linkTimeout = time.Second

var (
	connectionsDesc = prometheus.NewDesc(namespace+"_connections",
		"Live WebSocket connections on this node.", []string{"app"}, nil)
	channelsDesc = prometheus.NewDesc(namespace+"_channels",
		"Occupied channels on this node.", []string{"app"}, nil)
	subscriptionsDesc = prometheus.NewDesc(namespace+"_subscriptions",
		"Channel subscriptions of this node's sockets.", []string{"app"}, nil)
	queuedBytesDesc = prometheus.NewDesc(namespace+"_queued_bytes",
		"Bytes queued for this node's sockets and not yet written: held, every socket's queue summed (a broadcast frame once per socket holding it); distinct, each frame once, what the queues cost in memory.",
		[]string{"kind"}, nil)
	redisLinkDesc = prometheus.NewDesc(namespace+"_redis_link_up",
		"1 while the Redis pub/sub link is up, 0 while it is down; absent when scaling is off.", nil, nil)
)

// Gauges is a prometheus.Collector that reads the node's connection,
// channel and subscription counts per app, and the Redis link state, when
// scraped. Nothing is counted on the hot path for them.
type Gauges struct {
	apps     *apps.Provider
	registry *connection.Registry
	channels *channels.Manager
	link     scaling.Link // nil: no Redis link to report
}

var _ prometheus.Collector = (*Gauges)(nil)

// GaugesParams lists what NewGauges reads.
type GaugesParams struct {
	fx.In
	Apps     *apps.Provider
	Registry *connection.Registry
	Channels *channels.Manager
	Link     scaling.Link
	Scaling  scaling.Config
}

// NewGauges returns the scrape-time gauges. The Redis link gauge is left
// out when scaling is off: there is no link to report.
func NewGauges(p GaugesParams) *Gauges {
	g := &Gauges{apps: p.Apps, registry: p.Registry, channels: p.Channels}
	if p.Scaling.Enabled {
		g.link = p.Link
	}
	return g
}

// Describe implements prometheus.Collector.
func (g *Gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	ch <- channelsDesc
	ch <- subscriptionsDesc
	ch <- queuedBytesDesc
	if g.link != nil {
		ch <- redisLinkDesc
	}
}

// Collect implements prometheus.Collector. It takes each app's channel
// lock briefly, as the HTTP API's channel listing does.
func (g *Gauges) Collect(ch chan<- prometheus.Metric) {
	conns := g.registry.Counts()
	for _, app := range g.apps.All() {
		infos := g.channels.Channels(app.ID, "")
		subs := 0
		for _, info := range infos {
			subs += info.SubscriptionCount
		}
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(conns[app.ID]), app.ID)
		ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(len(infos)), app.ID)
		ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(subs), app.ID)
	}
	held, distinct := g.registry.QueuedBytes()
	ch <- prometheus.MustNewConstMetric(queuedBytesDesc, prometheus.GaugeValue, float64(held), "held")
	ch <- prometheus.MustNewConstMetric(queuedBytesDesc, prometheus.GaugeValue, float64(distinct), "distinct")
	if g.link != nil {
		ctx, cancel := context.WithTimeout(context.Background(), linkTimeout)
		defer cancel()
		up := 0.0
		if g.link.Ping(ctx) == nil {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(redisLinkDesc, prometheus.GaugeValue, up)
	}
}
