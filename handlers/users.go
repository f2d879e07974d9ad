package handlers

import (
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/dispatcher"
)

// UsersTerminateController closes every socket of a user on every node:
// POST /apps/{app_id}/users/{user_id}/terminate_connections. A socket's
// user is known from presence or private channel_data, or from
// pusher:signin, whatever channel it joined first.
type UsersTerminateController struct {
	dispatcher *dispatcher.Dispatcher
}

// NewUsersTerminateController returns the controller.
func NewUsersTerminateController(d *dispatcher.Dispatcher) *UsersTerminateController {
	return &UsersTerminateController{dispatcher: d}
}

// Terminate handles the route.
func (h *UsersTerminateController) Terminate(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	user, err := url.PathUnescape(c.Params("userId"))
	if err != nil || user == "" {
		return apiError(fiber.StatusBadRequest, "invalid user id")
	}
	if err := h.dispatcher.Terminate(c.UserContext(), app.ID, user); err != nil {
		return apiError(fiber.StatusServiceUnavailable, "the cluster could not be reached: %v", err)
	}
	return c.JSON(fiber.Map{})
}
