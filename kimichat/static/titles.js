(saved) => ({
  // The saved chats' names for the list beside the chat: first words, 📎 for attachments.
  __type__: "update",
  samples: (saved || []).filter((chat) => chat && chat.length).map((chat) => {
    const asked = chat.find((m) => m.role === "user");
    const parts = !asked ? [] : Array.isArray(asked.content) ? asked.content : [asked.content];
    const title = parts.map((p) => (typeof p === "string" ? p : p && p.type === "text" ? p.text : "📎 ")).join("");
    const chars = Array.from(title); // by character, not UTF-16 unit: an emoji is one
    return [chars.length > 40 ? chars.slice(0, 40).join("") + "..." : title || "…"];
  }),
})
