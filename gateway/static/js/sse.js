// Read a text/event-stream body from fetch() (EventSource cannot POST). Yields {event, data} objects;
// comment lines (": ping") and events without data are skipped.

/** Parse one event block (the lines between blank lines). */
export function parseEventBlock(block) {
  let event = "message";
  const data = [];
  for (const rawLine of block.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { event, data: parsed };
}

/** Async iterator over the events of a fetch Response body. */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let endedWithCR = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let text = decoder.decode(value, { stream: true });
      // CRLF split across two reads: the LF was already counted as a line end with the CR.
      if (endedWithCR && text.startsWith("\n")) text = text.slice(1);
      endedWithCR = text.endsWith("\r");
      buffer += text.replace(/\r\n?/g, "\n");
      let boundary;
      while ((boundary = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const parsed = parseEventBlock(block);
        if (parsed) yield parsed;
      }
    }
    buffer += decoder.decode();
    const tail = parseEventBlock(buffer.trim() ? buffer : "");
    if (tail) yield tail;
  } finally {
    try {
      reader.releaseLock();
    } catch {
      // a read was still pending (aborted stream): nothing to release
    }
  }
}
