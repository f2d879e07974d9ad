package metrics

import "github.com/fizz-server/fizz/modules/console"

// Envelope kinds this package handles.
const (
	KindQuery = "metrics.query"
	KindReply = "metrics.reply"
)

// Query asks every node about one app.
type Query struct {
	// ID matches the answers to the query.
	ID string `json:"id"`
	// Prefix keeps channels whose names start with it.
	Prefix string `json:"prefix,omitempty"`
	// Names keeps only these channels (when not empty).
	Names []string `json:"names,omitempty"`
	// Users asks for the user ids of presence channels.
	Users bool `json:"users,omitempty"`
	// ConnectionsOnly asks for the connection count alone.
	ConnectionsOnly bool `json:"connections_only,omitempty"`
	// Samples asks for the console's per-second samples after second
	// Since (see console.Samples).
	Samples bool  `json:"samples,omitempty"`
	Since   int64 `json:"since,omitempty"`
}

// Answer is one node's answer to a Query.
type Answer struct {
	ID          string                   `json:"id"`
	Connections int                      `json:"connections"`
	Channels    map[string]ChannelAnswer `json:"channels,omitempty"`
	Samples     []console.Sample         `json:"samples,omitempty"`
}

// ChannelAnswer is one node's view of one channel.
type ChannelAnswer struct {
	Subscriptions int      `json:"subscriptions"`
	Users         []string `json:"users,omitempty"`
}

// Result is the merged answer of the cluster.
type Result struct {
	// Connections is the number of open sockets of the app.
	Connections int
	// Channels are the occupied channels asked about, by name.
	Channels map[string]*Channel
	// Nodes is how many nodes answered; Partial is true when fewer
	// answered than received the query.
	Nodes   int
	Partial bool
	// Samples are the console's samples of every node, summed by second
	// (when the query asked for them).
	Samples []console.Sample
}

// Channel is the cluster's view of one channel.
type Channel struct {
	Subscriptions int
	// Users are the distinct user ids of a presence channel.
	Users map[string]struct{}
}

// merge folds a into r.
func (r *Result) merge(a Answer) {
	r.Nodes++
	r.Connections += a.Connections
	if len(a.Samples) > 0 {
		r.Samples = console.Sum(r.Samples, a.Samples)
	}
	for name, ca := range a.Channels {
		ch := r.Channels[name]
		if ch == nil {
			ch = &Channel{}
			r.Channels[name] = ch
		}
		ch.Subscriptions += ca.Subscriptions
		if ca.Users != nil && ch.Users == nil {
			ch.Users = make(map[string]struct{}, len(ca.Users))
		}
		for _, u := range ca.Users {
			ch.Users[u] = struct{}{}
		}
	}
}
