(message, chat) => {
  // Enter: the message moves to `pending` (the reply takes it from there) and shows in the chat
  // at once, as chat_box.user_messages() would show it; the box empties and locks (BUSY).
  const text = message?.text ?? "";
  const files = message?.files ?? [];
  const content = [
    ...files.map((file) => ({ file, alt_text: null, type: "file" })),
    ...(text ? [{ text, type: "text" }] : []),
  ];
  const shown = content.length ? [{ role: "user", metadata: null, content, options: null }] : [];
  return [message, { ...BUSY, value: { text: "", files: [] } }, Date.now(), [...(chat ?? []), ...shown]];
}
