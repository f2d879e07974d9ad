package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	eventsPath = "/apps/" + appID + "/events"
	batchPath  = "/apps/" + appID + "/batch_events"
)

// jsonBody marshals v, for bodies that are valid JSON.
func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// trigger is a valid POST events body, with fields replaced or removed
// (a nil value removes the field).
func trigger(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	body := map[string]any{"name": "my-event", "data": `{"hello":"world"}`, "channels": []string{"my-channel"}}
	for k, v := range fields {
		if v == nil {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	return jsonBody(t, body)
}

// batchOf is a POST batch_events body of n valid items.
func batchOf(n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"name": "my-event", "data": "x", "channel": fmt.Sprintf("my-channel-%d", i)}
	}
	return items
}

func channelNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ch-%d", i)
	}
	return names
}

// TestHTTPAPIRejects sends bad requests to the HTTP API and checks the
// status and that the JSON error names what failed.
func TestHTTPAPIRejects(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	valid := trigger(t, nil)
	post := func(body []byte, o signOpts) *http.Request {
		return signedRequest(http.MethodPost, "", eventsPath, body, nil, o)
	}
	postBatch := func(items any) *http.Request {
		return signedRequest(http.MethodPost, "", batchPath, jsonBody(t, map[string]any{"batch": items}), nil, signOpts{})
	}
	get := func(path string) *http.Request {
		return signedRequest(http.MethodGet, "", path, nil, nil, signOpts{})
	}

	tests := []struct {
		name       string
		give       *http.Request
		wantStatus int
		wantPhrase string
	}{
		// Signature.
		{"missing auth_signature", post(valid, signOpts{drop: []string{"auth_signature"}}), 401, "auth_signature is missing"},
		{"wrong signature", post(valid, signOpts{signature: strings.Repeat("0", 64)}), 401, "Invalid auth_signature"},
		{"upper-case hex signature", post(valid, signOpts{signature: strings.ToUpper(hmacHex(appSecret, "x"))}), 401, "Invalid auth_signature"},
		{"signed with the wrong secret", post(valid, signOpts{secret: "not-the-secret"}), 401, "Invalid auth_signature"},
		{"signed over GET", post(valid, signOpts{signMethod: http.MethodGet}), 401, "Invalid auth_signature"},
		{"signed over the wrong path", post(valid, signOpts{signPath: batchPath}), 401, "Invalid auth_signature"},
		{"signed with the prefix-less path of another app", post(valid, signOpts{signPath: "/apps/" + otherID + "/events"}), 401, "Invalid auth_signature"},
		{"extra unsigned query param", post(valid, signOpts{unsigned: url.Values{"foo": {"bar"}}}), 401, "Invalid auth_signature"},
		{"missing auth_key", post(valid, signOpts{drop: []string{"auth_key"}}), 401, "auth_key is missing"},
		{"another app's auth_key", post(valid, signOpts{key: otherKey, secret: otherSecret}), 401, "auth_key does not match the app"},
		{"unknown auth_key", post(valid, signOpts{key: "nobody"}), 401, "auth_key does not match the app"},
		{"missing auth_timestamp", post(valid, signOpts{drop: []string{"auth_timestamp"}}), 401, "auth_timestamp is missing"},
		{"non-numeric auth_timestamp", post(valid, signOpts{timestamp: "yesterday"}), 401, "auth_timestamp is not a number"},
		{"empty auth_timestamp", post(valid, signOpts{timestamp: " "}), 401, "auth_timestamp is not a number"},
		{"auth_timestamp out of int64", post(valid, signOpts{timestamp: "99999999999999999999"}), 401, "auth_timestamp is not a number"},
		{"auth_timestamp 601 s in the past", post(valid, signOpts{offset: -601}), 401, "auth_timestamp is more than 600 seconds"},
		{"auth_timestamp 601 s in the future", post(valid, signOpts{offset: 601}), 401, "auth_timestamp is more than 600 seconds"},
		{"auth_timestamp at the end of time", post(valid, signOpts{timestamp: "9223372036854775807"}), 401, "auth_timestamp is more than 600 seconds"},
		{"auth_timestamp at the start of time", post(valid, signOpts{timestamp: "-9223372036854775808"}), 401, "auth_timestamp is more than 600 seconds"},
		{"bad auth_version", post(valid, signOpts{version: "2.0"}), 401, "auth_version must be 1.0"},
		{"missing body_md5 with a body", post(valid, signOpts{drop: []string{"body_md5"}}), 401, "body_md5 is missing"},
		{"wrong body_md5", post(valid, signOpts{bodyMD5: md5Hex([]byte("another body"))}), 401, "body_md5 does not match the body"},
		{"unknown app id", signedRequest(http.MethodPost, "", "/apps/nope/events", valid, nil, signOpts{}), 404, `No app with id "nope"`},
		{"unknown app id on a GET", get("/apps/nope/channels"), 404, `No app with id "nope"`},

		// Body shape.
		{"bad JSON", post([]byte(`{"name":`), signOpts{}), 400, "not valid JSON"},
		{"JSON array body", post([]byte(`[{"name":"a"}]`), signOpts{}), 400, "JSON object"},
		{"JSON string body", post([]byte(`"event"`), signOpts{}), 400, "JSON object"},
		{"empty body", post(nil, signOpts{}), 400, "JSON object"},
		{"name is a number", post(trigger(t, map[string]any{"name": 1}), signOpts{}), 422, "name has the wrong type"},
		{"data is an object", post(trigger(t, map[string]any{"data": map[string]any{"a": 1}}), signOpts{}), 422, "data must be a string"},
		{"channels is a string", post(trigger(t, map[string]any{"channels": "my-channel"}), signOpts{}), 422, "channels has the wrong type"},
		{"channels holds a number", post(trigger(t, map[string]any{"channels": []any{1}}), signOpts{}), 422, "channels has the wrong type"},
		{"channel is a list", post(trigger(t, map[string]any{"channels": nil, "channel": []string{"a"}}), signOpts{}), 422, "channel has the wrong type"},
		{"socket_id is a number", post(trigger(t, map[string]any{"socket_id": 1.2}), signOpts{}), 422, "socket_id has the wrong type"},
		{"info is a list", post(trigger(t, map[string]any{"info": []string{"user_count"}}), signOpts{}), 422, "info has the wrong type"},
		{"missing name", post(trigger(t, map[string]any{"name": nil}), signOpts{}), 422, "name is required"},
		{"empty name", post(trigger(t, map[string]any{"name": ""}), signOpts{}), 422, "name is required"},
		{"missing data", post(trigger(t, map[string]any{"data": nil}), signOpts{}), 422, "data is required"},
		{"null data", post([]byte(`{"name":"e","data":null,"channels":["c"]}`), signOpts{}), 422, "data is required"},
		{"missing channels", post(trigger(t, map[string]any{"channels": nil}), signOpts{}), 422, "channels is required"},
		{"empty channels", post(trigger(t, map[string]any{"channels": []string{}}), signOpts{}), 422, "channels is required"},
		{"101 channels", post(trigger(t, map[string]any{"channels": channelNames(101)}), signOpts{}), 422, "channels has more than 100 entries"},
		{"201-char event name", post(trigger(t, map[string]any{"name": strings.Repeat("e", 201)}), signOpts{}), 422, "name is longer than 200 characters"},
		{"data over 10 KB", post(trigger(t, map[string]any{"data": strings.Repeat("d", 10<<10+1)}), signOpts{}), 413, "data is larger than 10240 bytes"},
		{"invalid channel name", post(trigger(t, map[string]any{"channels": []string{"ok", "not ok!"}}), signOpts{}), 422, `invalid channel name "not ok!"`},
		{"201-char channel name", post(trigger(t, map[string]any{"channels": []string{strings.Repeat("c", 201)}}), signOpts{}), 422, "invalid channel name"},
		{"bare #server-to-user- channel", post(trigger(t, map[string]any{"channels": []string{"#server-to-user-"}}), signOpts{}), 422, "invalid channel name"},
		{"bad socket_id", post(trigger(t, map[string]any{"socket_id": "abc"}), signOpts{}), 422, "socket_id is not a valid socket id"},
		{"socket_id with three parts", post(trigger(t, map[string]any{"socket_id": "1.2.3"}), signOpts{}), 422, "socket_id is not a valid socket id"},

		// Batch.
		{"batch with 11 items", postBatch(batchOf(11)), 422, "batch has more than 10 events"},
		{"batch missing", signedRequest(http.MethodPost, "", batchPath, []byte(`{}`), nil, signOpts{}), 422, "batch is required"},
		{"batch is an object", postBatch(map[string]any{"name": "x"}), 422, "batch has the wrong type"},
		{"batch item with missing name", postBatch(append(batchOf(1), map[string]any{"data": "x", "channel": "c"})), 422, "batch[1].name is required"},
		{"batch item with bad channel", postBatch(append(batchOf(2), map[string]any{"name": "e", "data": "x", "channel": "bad channel"})), 422, "batch[2].channels: invalid channel name"},
		{"batch item with data over 10 KB", postBatch([]map[string]any{{"name": "e", "data": strings.Repeat("d", 10<<10+1), "channel": "c"}}), 413, "batch[0].data is larger than 10240 bytes"},
		{"batch item with a number name", postBatch([]map[string]any{{"name": 7, "data": "x", "channel": "c"}}), 422, "name has the wrong type"},

		// Routes.
		{"users of a public channel", get("/apps/" + appID + "/channels/my-channel/users"), 400, "my-channel is not a presence channel"},
		{"users of a private channel", get("/apps/" + appID + "/channels/private-x/users"), 400, "private-x is not a presence channel"},
		// The /apps/:appId group middleware (the signature check) matches
		// every method, so Fiber first verifies the signature and then,
		// finding a POST route but no GET route, answers 405.
		{"GET on events", get(eventsPath), 405, "Method Not Allowed"},
		{"GET on batch_events", get(batchPath), 405, "Method Not Allowed"},
		{"POST on channels", signedRequest(http.MethodPost, "", "/apps/"+appID+"/channels", []byte(`{}`), nil, signOpts{}), 405, "Method Not Allowed"},
		{"user id with a bad escape", signedRequest(http.MethodPost, "", "/apps/"+appID+"/users/a%zz/terminate_connections", nil, nil, signOpts{}), 400, "invalid user id"},
		{"unknown route", get("/apps/" + appID + "/nothing"), 404, "Cannot GET /apps/app-id/nothing"},
		{"invalid channel name in the path", get("/apps/" + appID + "/channels/bad%20name"), 400, `invalid channel name "bad%20name"`},
		{"invalid escape in the channel path", get("/apps/" + appID + "/channels/bad%zzname"), 400, "invalid channel name"},
		{"201-char channel name in the path", get("/apps/" + appID + "/channels/" + strings.Repeat("c", 201)), 400, "invalid channel name"},
		{"invalid channel name in the users path", get("/apps/" + appID + "/channels/presence-a%2Fb/users"), 400, `invalid channel name "presence-a%2Fb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.do(t, tt.give)
			assert.Equal(t, tt.wantStatus, status, "body: %s", body)
			assert.Contains(t, apiError(t, body), tt.wantPhrase)
		})
	}
}
