(saved, slot) => {
  // The chat was cleared: drop it from the saved ones too, and relist them.
  saved = Array.isArray(saved) ? [...saved] : [];
  if (Number.isInteger(slot) && slot >= 0 && slot < saved.length) saved.splice(slot, 1);
  return [saved, null, TITLES(saved)];
}
