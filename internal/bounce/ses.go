package bounce

import (
	"encoding/json"
	"strings"
)

// Amazon SES sends bounce, complaint and delivery notifications as JSON,
// by SNS e-mail or HTTP. sesNotification is the part of that document
// that is read here.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		ReportingMTA      string `json:"reportingMTA"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
		UserAgent             string `json:"userAgent"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ArrivalDate           string `json:"arrivalDate"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
		ReportingMTA string   `json:"reportingMTA"`
		RemoteMTAIP  string   `json:"remoteMtaIp"`
	} `json:"delivery"`
	Mail struct {
		Source      string   `json:"source"`
		MessageID   string   `json:"messageId"`
		Destination []string `json:"destination"`
		Headers     []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string   `json:"messageId"`
			Subject   string   `json:"subject"`
			To        []string `json:"to"`
			From      []string `json:"from"`
		} `json:"commonHeaders"`
	} `json:"mail"`
}

// parseSES reads an SES notification in the notice text. It returns false
// when the text is not one.
func parseSES(m *message, rep *Report) bool {
	s := strings.TrimSpace(m.notice)
	if !strings.HasPrefix(s, "{") || !strings.Contains(s[:min(len(s), 200)], "Type\"") {
		return false
	}
	// Sendmail splits lines longer than 990 octets with "!\n ".
	s = strings.ReplaceAll(s, "!\n ", "")
	if end := strings.LastIndexByte(s, '}'); end > 0 {
		s = s[:end+1]
	}
	// An SNS envelope carries the notification as a string.
	var env struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	if json.Unmarshal([]byte(s), &env) == nil && env.Type == "Notification" && strings.HasPrefix(env.Message, "{") {
		s = env.Message
	}
	var n sesNotification
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return false
	}
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	switch {
	case kind == "Bounce" && n.Bounce != nil:
		rep.Kind, rep.Format = KindDSN, "amazon-ses"
		rep.ReportingMTA = typedValue(n.Bounce.ReportingMTA)
		for _, b := range n.Bounce.BouncedRecipients {
			r := Recipient{Address: cleanAddress(b.EmailAddress), Action: b.Action, Status: findStatus(b.Status),
				Diagnostic: typedValue(b.DiagnosticCode)}
			if r.Diagnostic == "" {
				r.Diagnostic = n.Bounce.BounceType + " " + n.Bounce.BounceSubType
			}
			if r.Action == "" {
				r.Action = "failed"
				if n.Bounce.BounceType == "Transient" {
					r.Action = "delayed"
				}
			}
			if validAddress(r.Address) && len(rep.Recipients) < maxRecipients {
				rep.Recipients = append(rep.Recipients, r)
			}
		}
	case kind == "Complaint" && n.Complaint != nil:
		rep.Kind, rep.Format = KindARF, "amazon-ses"
		fb := &Feedback{Type: strings.ToLower(n.Complaint.ComplaintFeedbackType), UserAgent: n.Complaint.UserAgent,
			ArrivalDate: n.Complaint.ArrivalDate, OriginalMailFrom: n.Mail.Source}
		if fb.Type == "" {
			fb.Type = "abuse"
		}
		rep.Feedback = fb
		for _, c := range n.Complaint.ComplainedRecipients {
			if a := cleanAddress(c.EmailAddress); validAddress(a) && len(rep.Recipients) < maxRecipients {
				rep.Recipients = append(rep.Recipients, Recipient{Address: a})
				fb.OriginalRcptTo = append(fb.OriginalRcptTo, a)
			}
		}
	case kind == "Delivery":
		rep.Kind, rep.Format = KindDSN, "amazon-ses"
		list := n.Mail.Destination
		diag := ""
		if n.Delivery != nil {
			if len(n.Delivery.Recipients) > 0 {
				list = n.Delivery.Recipients
			}
			diag = n.Delivery.SMTPResponse
			rep.ReportingMTA = n.Delivery.ReportingMTA
		}
		for _, a := range list {
			if a = cleanAddress(a); validAddress(a) && len(rep.Recipients) < maxRecipients {
				rep.Recipients = append(rep.Recipients, Recipient{Address: a, Action: "delivered", Diagnostic: diag})
			}
		}
	default:
		return false
	}
	o := &rep.Original
	o.MessageID = strings.Trim(n.Mail.CommonHeaders.MessageID, "<>")
	if o.MessageID == "" {
		o.MessageID = n.Mail.MessageID
	}
	o.ReturnPath = cleanAddress(n.Mail.Source)
	o.Subject = n.Mail.CommonHeaders.Subject
	o.To = strings.Join(n.Mail.CommonHeaders.To, ", ")
	o.From = strings.Join(n.Mail.CommonHeaders.From, ", ")
	for _, h := range n.Mail.Headers {
		if len(h.Name) > 11 && strings.EqualFold(h.Name[:11], "X-Posthorn-") && len(o.Posthorn) < 50 {
			if o.Posthorn == nil {
				o.Posthorn = map[string]string{}
			}
			o.Posthorn[canonicalKey(h.Name)] = h.Value
		}
	}
	return true
}
