package fakecloud

import (
	"fmt"
	"net/http"
)

// proxyReply is what a reverse proxy in front of an API answers when it
// fails: an HTML page, not the API's JSON envelope, as nginx writes it.
func proxyReply(status int) reply {
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	h := http.Header{}
	h.Set("Content-Type", "text/html")
	h.Set("Server", "nginx")
	body := fmt.Sprintf("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", text, text)
	return reply{status: status, header: h, body: []byte(body)}
}
