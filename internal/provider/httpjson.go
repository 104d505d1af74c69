package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Response is a provider's answer, read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// maxBody bounds what is read of a provider answer.
const maxBody = 4 << 20

// Send makes one request with a JSON body (when in is not nil) and reads the
// whole answer. Transport failures come back as *Error: Retryable when the
// request never left, Ambiguous when it did and the answer was lost.
func Send(ctx context.Context, client *http.Client, method, url string, header http.Header, in any) (*Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, NewTerminal(InvalidParameters, "cannot encode request: "+err.Error())
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, NewTerminal(InvalidConfig, "cannot build request: "+Redact(err.Error()))
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The transport classifies what it sees; anything else is unknown,
		// so it is treated as possibly sent.
		return nil, TransportError(err, true)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		// The status line arrived, so the request was sent.
		return nil, TransportError(err, true)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// StatusError classifies an HTTP error status that a driver has no more
// specific reading for. message is the provider's own text.
//
//	429            Retryable, RateLimited, after Retry-After / RateLimit-Reset
//	401, 403       Terminal, AuthFailed
//	404            Terminal, NodeNotFound
//	409, 423       Retryable, ProviderBusy (locked, another action running)
//	503            Retryable (the provider says it did not take the request)
//	408, other 5xx Ambiguous for a call that changes something, Retryable for a read
//	other 4xx      Terminal, Rejected
func StatusError(code int, header http.Header, method, message string) *Error {
	e := &Error{StatusCode: code, Message: message}
	switch {
	case code == http.StatusTooManyRequests:
		e.Kind, e.Class, e.RetryAfter = Retryable, RateLimited, RetryAfter(header, time.Now())
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.Kind, e.Class = Terminal, AuthFailed
	case code == http.StatusNotFound:
		e.Kind, e.Class = Terminal, NodeNotFound
	case code == http.StatusConflict || code == http.StatusLocked:
		e.Kind, e.Class = Retryable, Busy
	case code == http.StatusServiceUnavailable:
		e.Kind, e.Class, e.RetryAfter = Retryable, Unavailable, RetryAfter(header, time.Now())
	case code == http.StatusRequestTimeout || code >= 500:
		e.Kind, e.Class = Retryable, Unavailable
		if method != http.MethodGet && method != http.MethodHead {
			e.Kind = Ambiguous
		}
	default:
		e.Kind, e.Class = Terminal, Rejected
	}
	if e.Message == "" {
		e.Message = http.StatusText(code)
	}
	return e
}

// Decode unmarshals a provider answer, as an Ambiguous error when it is not
// what the API documents (the call may have had its effect).
func Decode(r *Response, out any) error {
	if err := json.Unmarshal(r.Body, out); err != nil {
		return &Error{Kind: Ambiguous, Class: Unavailable, StatusCode: r.StatusCode,
			Message: fmt.Sprintf("cannot read the provider's answer: %v", err), Err: err}
	}
	return nil
}
