# context.py - placeholder
