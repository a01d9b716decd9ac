package api

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is every error answer of the admin socket.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// APIError is the body of every error answer of /v1.
type APIError struct {
	Error APIErrorDetail `json:"error"`
}

// APIErrorDetail says what went wrong and, for validation errors, where.
type APIErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIErrorDetail) Error() string { return e.Message }

// WriteJSON answers v as indented JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers an ErrorBody (the admin socket's error shape).
func WriteError(w http.ResponseWriter, code int, kind, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = kind, msg
	WriteJSON(w, code, b)
}

// BadRequest is an error in what the client asked (a 400 on either API).
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

// Decode reads a JSON request body (at most 64 MiB, no unknown fields)
// into v; a bad body is a *BadRequest. The /v1 API reads its bodies under
// a byte budget instead (v1's readBody).
func Decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &BadRequest{Msg: "bad request body: " + err.Error()}
	}
	return nil
}
