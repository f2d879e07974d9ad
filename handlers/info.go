package handlers

import (
	"strings"

	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
)

// infoSet is the attributes an info parameter asks for.
type infoSet struct {
	userCount         bool
	subscriptionCount bool
	cache             bool
}

func parseInfo(s string) infoSet {
	var set infoSet
	for _, a := range strings.Split(s, ",") {
		switch strings.TrimSpace(a) {
		case "user_count":
			set.userCount = true
		case "subscription_count":
			set.subscriptionCount = true
		case "cache":
			set.cache = true
		}
	}
	return set
}

func (s infoSet) any() bool { return s.userCount || s.subscriptionCount || s.cache }

// attributes returns the info attributes of one channel as Pusher gives
// them for a channel and for triggers: user_count on presence channels,
// subscription_count on any. ch may be nil for an unoccupied channel.
func (s infoSet) attributes(name string, ch *metrics.Channel) map[string]any {
	out := make(map[string]any)
	kind := pusher.KindOf(name)
	subs, users := 0, 0
	if ch != nil {
		subs, users = ch.Subscriptions, len(ch.Users)
	}
	if s.userCount && kind.Presence {
		out["user_count"] = users
	}
	if s.subscriptionCount {
		out["subscription_count"] = subs
	}
	return out
}

// listAttributes returns the attributes of one channel in GET channels:
// the same as attributes, so that every route answers one count alike
// (user_count on presence channels, subscription_count on any).
func (s infoSet) listAttributes(name string, ch *metrics.Channel) map[string]any {
	return s.attributes(name, ch)
}
