package fanout

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/pusherclient"
)

const wait = 5 * time.Second

// start serves a fixture in mode on a loopback port and returns its
// WebSocket and HTTP base URLs.
func start(t *testing.T, mode Mode) (wsURL, httpURL string) {
	t.Helper()
	srv := New(mode)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/app/app-key?protocol=7", hs.URL
}

func dial(t *testing.T, url string, o pusherclient.Options) *pusherclient.Client {
	t.Helper()
	c, err := pusherclient.DialWith(url, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func trigger(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/apps/app-id/events", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		give    string
		want    Mode
		wantErr bool
	}{
		{give: "coalesce", want: Coalesce},
		{give: "frame", want: Frame},
		{give: "batch", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseMode(tt.give)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.give, got.String())
		})
	}
}

func TestBroadcastReachesSubscribersOnly(t *testing.T) {
	for _, mode := range []Mode{Coalesce, Frame} {
		t.Run(mode.String(), func(t *testing.T) {
			ws, base := start(t, mode)
			a, b, other := dial(t, ws, pusherclient.Options{}), dial(t, ws, pusherclient.Options{}), dial(t, ws, pusherclient.Options{})
			assert.NotEmpty(t, a.SocketID)
			for _, c := range []*pusherclient.Client{a, b} {
				_, err := c.Subscribe("bench-0", "", "")
				require.NoError(t, err)
			}
			_, err := other.Subscribe("bench-1", "", "")
			require.NoError(t, err)

			for i := range 3 {
				trigger(t, base, `{"name":"tick","channel":"bench-0","data":"{\"n\":`+string(rune('0'+i))+`}"}`)
			}
			for _, c := range []*pusherclient.Client{a, b} {
				for i := range 3 {
					f, err := c.Expect("tick", "bench-0", wait)
					require.NoError(t, err)
					assert.Equal(t, `{"n":`+string(rune('0'+i))+`}`, f.Text())
				}
			}
			assert.NoError(t, other.ExpectNone("tick", 100*time.Millisecond))
		})
	}
}

func TestSubscribeAsString(t *testing.T) {
	ws, base := start(t, Coalesce)
	c := dial(t, ws, pusherclient.Options{})
	require.NoError(t, c.SendText([]byte(`{"event":"pusher:subscribe","data":"{\"channel\":\"news\"}"}`)))
	_, err := c.Expect("pusher_internal:subscription_succeeded", "news", wait)
	require.NoError(t, err)
	trigger(t, base, `{"name":"tick","channels":["news"],"data":"hi"}`)
	f, err := c.Expect("tick", "news", wait)
	require.NoError(t, err)
	assert.Equal(t, "hi", f.Text())
}

func TestPrivateChannelRefused(t *testing.T) {
	ws, _ := start(t, Coalesce)
	c := dial(t, ws, pusherclient.Options{})
	require.NoError(t, c.SendSubscribe("private-x", "key:sig", ""))
	f, err := c.Expect("pusher:error", "", wait)
	require.NoError(t, err)
	e, err := f.PusherError()
	require.NoError(t, err)
	assert.Equal(t, 4009, e.Code)
}

func TestPingPong(t *testing.T) {
	ws, _ := start(t, Frame)
	c := dial(t, ws, pusherclient.Options{})
	require.NoError(t, c.Ping())
}

func TestBadTriggerRefused(t *testing.T) {
	_, base := start(t, Coalesce)
	resp, err := http.Post(base+"/apps/app-id/events", "application/json", strings.NewReader(`{"data":"x"}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}

func TestSlowConsumerIsClosed(t *testing.T) {
	ws, base := start(t, Coalesce)
	slow := dial(t, ws, pusherclient.Options{Paused: true, ReceiveBuffer: 4096})
	_, err := slow.Subscribe("bench-0", "", "")
	require.NoError(t, err)

	// 16 MB: more than the queue and both kernel buffers hold.
	data := strings.Repeat("x", 8<<10)
	for range 2000 {
		trigger(t, base, `{"name":"big","channel":"bench-0","data":"`+data+`"}`)
	}
	slow.Resume()
	_, _, err = slow.WaitClosed(wait)
	assert.NoError(t, err, "a socket whose queue overflowed is closed")
}
