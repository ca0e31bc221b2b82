-- One database per service; kgi_accounts is created by the image itself.
CREATE DATABASE kgi_subscribers OWNER kgi;
CREATE DATABASE kgi_feeds OWNER kgi;
CREATE DATABASE kgi_newsletter OWNER kgi;
CREATE DATABASE kgi_members OWNER kgi;
CREATE DATABASE kgi_events OWNER kgi;
