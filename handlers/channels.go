package handlers

import (
	"encoding/json"
	"net/url"
	"sort"

	"github.com/gofiber/fiber/v2"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// ChannelsController answers the channel queries of the HTTP API for the
// whole cluster. It mirrors Reverb's ChannelsController, ChannelController
// and ChannelUsersController.
type ChannelsController struct {
	metrics *metrics.Handler
	state   scaling.State
}

// NewChannelsController returns the controller.
func NewChannelsController(m *metrics.Handler, state scaling.State) *ChannelsController {
	return &ChannelsController{metrics: m, state: state}
}

// channelParam returns the unescaped, validated channel of the route.
func channelParam(c *fiber.Ctx) (string, error) {
	name, err := url.PathUnescape(c.Params("channel"))
	if err != nil || !pusher.ValidChannelName(name) {
		return "", apiError(fiber.StatusBadRequest, "invalid channel name %q", clip(c.Params("channel")))
	}
	return name, nil
}

// gatherError answers a query the cluster could not be asked.
func gatherError(err error) error {
	return apiError(fiber.StatusServiceUnavailable, "the cluster could not be queried: %v", err)
}

// Index handles GET /apps/{app_id}/channels.
func (h *ChannelsController) Index(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	info := parseInfo(c.Query("info"))
	res, err := h.metrics.Gather(c.UserContext(), app.ID, metrics.Query{
		Prefix: c.Query("filter_by_prefix"),
		Users:  info.userCount,
	})
	if err != nil {
		return gatherError(err)
	}
	out := make(map[string]map[string]any, len(res.Channels))
	for name, ch := range res.Channels {
		out[name] = info.listAttributes(name, ch)
	}
	return c.JSON(fiber.Map{"channels": out})
}

// Show handles GET /apps/{app_id}/channels/{channel}.
func (h *ChannelsController) Show(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	name, err := channelParam(c)
	if err != nil {
		return err
	}
	info := parseInfo(c.Query("info"))
	kind := pusher.KindOf(name)
	res, err := h.metrics.Gather(c.UserContext(), app.ID, metrics.Query{
		Names: []string{name},
		Users: kind.Presence,
	})
	if err != nil {
		return gatherError(err)
	}
	ch := res.Channels[name]
	out := info.attributes(name, ch)
	out["occupied"] = ch != nil && ch.Subscriptions > 0
	if kind.Cache {
		// Reverb's cache attribute: the last event of a cache channel,
		// kept with no subscribers too.
		payload, ok, err := h.state.LastEvent(c.UserContext(), app.ID, name)
		if err != nil {
			return gatherError(err)
		}
		if ok {
			out["cache"] = json.RawMessage(payload)
		}
	}
	return c.JSON(out)
}

// Users handles GET /apps/{app_id}/channels/{channel}/users.
func (h *ChannelsController) Users(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	name, err := channelParam(c)
	if err != nil {
		return err
	}
	if !pusher.KindOf(name).Presence {
		return apiError(fiber.StatusBadRequest, "%s is not a presence channel", name)
	}
	res, err := h.metrics.Gather(c.UserContext(), app.ID, metrics.Query{Names: []string{name}, Users: true})
	if err != nil {
		return gatherError(err)
	}
	type user struct {
		ID string `json:"id"`
	}
	users := []user{}
	if ch := res.Channels[name]; ch != nil {
		for id := range ch.Users {
			users = append(users, user{ID: id})
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i].ID < users[j].ID })
	return c.JSON(fiber.Map{"users": users})
}

// Connections handles GET /apps/{app_id}/connections: the app's open
// sockets across the cluster.
func (h *ChannelsController) Connections(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	res, err := h.metrics.Gather(c.UserContext(), app.ID, metrics.Query{ConnectionsOnly: true})
	if err != nil {
		return gatherError(err)
	}
	return c.JSON(fiber.Map{"connections": res.Connections})
}
