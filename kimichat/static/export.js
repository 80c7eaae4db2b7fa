(messages, persona) => {
  // The current conversation as a Markdown file, built in the browser: nothing is sent anywhere.
  const text = (c) =>
    typeof c === "string" ? c
    : Array.isArray(c) ? c.map(text).join("")
    : c && typeof c === "object" ? (c.text ?? (c.file ? `[${c.file.orig_name || "file"}]` : ""))
    : "";
  const lines = [`# ${document.title} · ${persona}`, "", `_${new Date().toISOString().slice(0, 16).replace("T", " ")}_`, ""];
  for (const m of messages || []) {
    const title = m.metadata && m.metadata.title;
    const body = text(m.content).trim();
    if (!body) continue;
    if (title) {
      lines.push(`<details><summary>${title}</summary>`, "", body, "", "</details>", "");
    } else {
      lines.push(m.role === "user" ? "**You:**" : "**Assistant:**", "", body, "");
    }
  }
  const blob = new Blob([lines.join("\n")], { type: "text/markdown;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `conversation-${persona}-${new Date().toISOString().slice(0, 10)}.md`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  return [];
}
