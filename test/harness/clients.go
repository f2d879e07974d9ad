package harness

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// DialMany opens n sockets on wsURL at once; they close, all at once, when
// t ends.
func DialMany(t testing.TB, wsURL string, n int) []*pusherclient.Client {
	t.Helper()
	out := make([]*pusherclient.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i], errs[i] = pusherclient.Dial(wsURL) })
	}
	wg.Wait()
	// Closed all at once: one by one, each waiting for the server's
	// answer, they take seconds.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range out {
			if c != nil {
				wg.Go(func() { _ = c.Close() })
			}
		}
		wg.Wait()
	})
	for i := range out {
		require.NoError(t, errs[i], "socket %d on %s", i, wsURL)
	}
	return out
}

// SubscribeAll subscribes every client to a public channel at once, each
// waiting for its subscription_succeeded.
func SubscribeAll(t testing.TB, clients []*pusherclient.Client, channel string) {
	t.Helper()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			f, err := c.Subscribe(channel, "", "")
			if err == nil && f.Event != pusher.EventSubscriptionSucceeded {
				err = fmt.Errorf("subscribe %s: %s", channel, f)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "socket %d", i)
	}
}

// Trickle calls leave for each client, in ten waves spread over about two
// seconds (a ticker paces the load; nothing waits on it for order).
func Trickle(t testing.TB, clients []*pusherclient.Client, leave func(int, *pusherclient.Client) error) {
	t.Helper()
	const waves = 10
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	per := (len(clients) + waves - 1) / waves
	for w := 0; w*per < len(clients); w++ {
		if w > 0 {
			<-tick.C
		}
		var wg sync.WaitGroup
		for i := w * per; i < min((w+1)*per, len(clients)); i++ {
			wg.Go(func() { assert.NoError(t, leave(i, clients[i]), "socket %d", i) })
		}
		wg.Wait()
	}
}
