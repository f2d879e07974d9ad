package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
)

// signedRequest is a POST to the HTTP API, signed as Pusher's REST API
// requires unless a test spoils one part of it.
type signedRequest struct {
	appID, key, secret string
	body               []byte
	timestamp          time.Time
	bodyMD5            string // "" computes it from body
	signature          string // "" computes it
	unsigned           bool   // send no auth parameters at all
}

func (r signedRequest) do(t testing.TB, n *harness.Node) (int, map[string]any) {
	t.Helper()
	path := "/apps/" + r.appID + "/events"
	params := map[string]string{
		"auth_key":       r.key,
		"auth_timestamp": strconv.FormatInt(r.timestamp.Unix(), 10),
		"auth_version":   "1.0",
	}
	sum := md5.Sum(r.body)
	params["body_md5"] = hex.EncodeToString(sum[:])
	if r.bodyMD5 != "" {
		params["body_md5"] = r.bodyMD5
	}
	params["auth_signature"] = pusher.SignRequest(r.secret, http.MethodPost, path, params)
	if r.signature != "" {
		params["auth_signature"] = r.signature
	}
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	target := n.HTTPURL + path
	if !r.unsigned {
		target += "?" + q.Encode()
	}
	resp, err := n.HTTP.Post(target, "application/json", bytes.NewReader(r.body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body), "the answer is JSON: %q", raw)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	return resp.StatusCode, body
}

func TestEventsAPISignature(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Dial(t, n)
	harness.Subscribe(t, c, "api")
	body := []byte(`{"name":"signed","channels":["api"],"data":"{\"ok\":true}"}`)
	valid := signedRequest{appID: n.App.ID, key: n.App.Key, secret: n.App.Secret, body: body, timestamp: time.Now()}

	t.Run("signed", func(t *testing.T) {
		status, answer := valid.do(t, n)
		require.Equal(t, http.StatusOK, status, "%v", answer)
		f := harness.Expect(t, c, "signed", "api")
		assert.JSONEq(t, `{"ok":true}`, f.Text())
	})

	tests := []struct {
		name string
		give func(r signedRequest) signedRequest
		want int
	}{
		{name: "unsigned", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest { r.unsigned = true; return r }},
		{name: "bad signature", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest {
			r.signature = "0000000000000000000000000000000000000000000000000000000000000000"
			return r
		}},
		{name: "wrong secret", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest { r.secret = "guess"; return r }},
		{name: "wrong key", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest { r.key = "other-key"; return r }},
		{name: "timestamp 11 minutes old", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest {
			r.timestamp = r.timestamp.Add(-11 * time.Minute)
			return r
		}},
		{name: "timestamp 11 minutes ahead", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest {
			r.timestamp = r.timestamp.Add(11 * time.Minute)
			return r
		}},
		{name: "body_md5 of another body", want: http.StatusUnauthorized, give: func(r signedRequest) signedRequest {
			r.bodyMD5 = "d41d8cd98f00b204e9800998ecf8427e"
			return r
		}},
		{name: "unknown app id", want: http.StatusNotFound, give: func(r signedRequest) signedRequest { r.appID = "999999"; return r }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, answer := tt.give(valid).do(t, n)
			assert.Equal(t, tt.want, status)
			assert.IsType(t, "", answer["error"], "a JSON {\"error\": \"…\"} body: %v", answer)
			assert.NotEmpty(t, answer["error"])
		})
	}
	t.Run("refused requests reach nobody", func(t *testing.T) {
		harness.Flush(t, n, "api", c)
		harness.RequireNone(t, c, "signed", "api")
	})
	t.Run("pusher-http-go with the wrong secret", func(t *testing.T) {
		bad := n.PusherFor(n.App)
		bad.Secret = "guess"
		err := bad.Trigger("api", "nope", "x")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "401")
	})
}

// TestServerPath: with FIZZ_SERVER_PATH every route moves under the prefix,
// and pusher-http-go's signature (over the path without the prefix) holds.
func TestServerPath(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Server.Path = "/ws" })
	c := harness.Dial(t, n) // WSURL includes the prefix
	harness.Subscribe(t, c, "prefixed")
	trigger(t, n, "prefixed", "hello", "there")
	assert.Equal(t, "there", harness.Expect(t, c, "hello", "prefixed").Text())

	resp, err := n.HTTP.Get(n.HTTPURL + "/ws/up")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
