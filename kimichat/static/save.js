(chat, saved, slot) => {
  // Keep this chat among the saved ones (newest first), in the browser only; relist them.
  saved = Array.isArray(saved) ? [...saved] : [];
  if (!Array.isArray(chat) || !chat.some((m) => m.role === "user")) return [saved, slot];
  if (Number.isInteger(slot) && slot >= 0 && slot < saved.length) {
    saved[slot] = chat;
  } else {
    saved.unshift(chat);
    slot = 0;
  }
  return [saved, slot, TITLES(saved)];
}
